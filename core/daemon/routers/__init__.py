"""One FastAPI router per resource: `health` (and daemon control), `models`, `jobs`."""
