"""The baseline of bench/order_page.py: a bare Flask app rendering a one-line template."""
from flask import Flask, render_template_string

app = Flask(__name__)


@app.get("/")
def index():
    return render_template_string("<p>Hello {{ name }}</p>", name="bench")
