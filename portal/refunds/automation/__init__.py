"""Automation: rules that approve and refund routine requests, their runner and their simulation."""
