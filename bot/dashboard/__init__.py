"""The admins' dashboard and its JSON API, served by ``quotabot serve`` itself:

links.py   sign-in links: short-lived, signed, naming the workspace they show
access.py  who is asking: a link's session cookie, the link itself, or the operators' token
queries.py what the views show, read from the hourly rollups
api.py     /api/v1/ (JSON, and CSV where a table is asked for)
page.py    /dashboard: one HTML page, charts drawn as SVG on the server
"""
