"""Transport: HTTP routes, Socket.IO handlers and schemas, limits, the ASGI server, shutdown."""
