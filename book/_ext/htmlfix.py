"""Sphinx extension: inline scripts that the book's extensions write twice, once.

With Sphinx 7.4, sphinx-thebe and sphinx-togglebutton add their inline configuration
scripts (``const THEBE_JS_URL = …``) once to the application and once to the builder (the
copies differ only in a file name of ``None`` versus ``""``), and Sphinx removes duplicates
only for equal assets: every page declared ``THEBE_JS_URL`` twice, which the browser
reports as "SyntaxError: Identifier 'THEBE_JS_URL' has already been declared" (found by
``python -m denoise_lib.course sitecheck``). This keeps the first of identical scripts.
"""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        attrs = getattr(js, "attributes", {}) or {}
        # the two copies differ only in filename None versus "" (an inline script either way)
        key = (getattr(js, "filename", str(js)) or None, tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key in seen:
            continue
        seen.add(key)
        kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
