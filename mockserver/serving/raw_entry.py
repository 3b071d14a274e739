"""The file uWSGI's `--python-raw` loads: its `application` is called with each connection
uWSGI accepts on its raw socket (`serving.front`)."""

from mockserver.serving.front import serve_connection

application = serve_connection
