from flask import render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.extensions import db


def init_app(app):
    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template("errors/csrf.html"), 400

    @app.errorhandler(HTTPException)
    def http_error(error):
        # JSON clients (and the health check) keep Werkzeug's own answers.
        if error.code is None or error.code < 400:
            return error
        return render_template("errors/http.html", error=error), error.code

    @app.errorhandler(500)
    def internal_error(error):
        db.session.rollback()
        return render_template("errors/http.html", error=None), 500
