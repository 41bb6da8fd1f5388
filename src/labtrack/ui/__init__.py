"""The web UI: server-rendered pages (Jinja2) with a little vanilla JavaScript (docs/ui.md).

Pages are thin: the server renders the layout, navigation and what the page is about; the
page's script fetches the data from labtrack's own JSON API (``/ajax-api/2.0/...``), so every
permission check, filter and sort happens in exactly one place, the API. Templates and static
files are package data; Plotly.js is served from the installed ``plotly`` package. Nothing is
loaded from anywhere but this server.
"""
