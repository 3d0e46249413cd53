"""The baselines of bench/order_page.py: bare Flask apps rendering a one-line template.

``/`` renders it from a string, as the issue words it (Jinja compiles the string on every
request); ``/compiled`` renders the same line from a loader, compiled once and cached, which is
the faster and stricter baseline.
"""

from flask import Flask, render_template, render_template_string
from jinja2 import DictLoader

app = Flask(__name__)
app.jinja_loader = DictLoader({"line.html": "<p>Hello {{ name }}</p>"})


@app.get("/")
def index():
    return render_template_string("<p>Hello {{ name }}</p>", name="bench")


@app.get("/compiled")
def compiled():
    return render_template("line.html", name="bench")
