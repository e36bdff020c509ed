from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Hashed, compressed static files, with ES module imports rewritten too.

    The dashboard's scripts import one another (`import … from "./dom.js"`);
    without this the imports would load unhashed, briefly cached copies.
    """

    support_js_module_import_aggregation = True
