"""`sitegen serve`: a live preview built into a temp folder, served on 127.0.0.1, rebuilt on every save.

The server is our own (not SimpleHTTPRequestHandler's path logic): the request path is decoded,
split and checked segment by segment, and only regular files inside the preview root are served
(SECURITY-CASES §11). Foreign `Host`/`Origin` headers are refused (DNS rebinding). Rebuilds reuse
the loaded site kept in memory; open tabs reload through server-sent events, and a failed build
shows its errors as an overlay while the last good pages keep being served.
"""

from .hosts import HostPolicy
from .options import BuildStatus, ServeOptions
from .paths import Resolved, mime_type, resolve_request_path
from .preview import Preview, serve

__all__ = ["BuildStatus", "HostPolicy", "Preview", "Resolved", "ServeOptions", "mime_type", "resolve_request_path", "serve"]
