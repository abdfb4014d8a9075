"""Private serving: an OpenAI-compatible HTTP server over the continuous-batching engine, with a local
chat page (server.py, chat.py, api.py, metrics.py, static/index.html)."""
