"""The Tressel daemon: one process that keeps models resident and runs jobs for every host.

Layout: `config` (settings), `store` (jobs in SQLite), `cache` (content-addressed results),
`events` (progress fan-out for Server-Sent Events), `engine` (the one function that turns a job
into a layer through the real pipeline), `manager` (queue and one worker per device), `auth`
(token, Host and upload-size guards), `routers/` (one FastAPI router per resource), `app`
(assembly) and `server` (single-instance lock, socket, endpoint file, uvicorn).
"""
