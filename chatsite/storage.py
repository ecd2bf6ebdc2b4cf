"""Static files for production: hashed names, compressed, and ES module imports rewritten to them."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ChatStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Whitenoise's storage, also rewriting `import ... from "./x.js"` in the page's ES modules to the
    hashed names, so a browser never mixes modules of two deployments."""

    support_js_module_import_aggregation = True
