"""The scene editor: a local web app over the library (``sisgen edit``).

Modules: :mod:`~sisgen.editor.session` (the editing state: a source map, its steps as a
recipe, seeds, rendering through the one sample path, saving through the writers and the
manifest; no web framework), :mod:`~sisgen.editor.schemas` (the request bodies),
:mod:`~sisgen.editor.app` (the FastAPI routes, one router per area) and
:mod:`~sisgen.editor.server` (uvicorn, loopback by default). The page is ``static/``.
FastAPI and uvicorn are the ``editor`` extra; nothing outside this package imports them.
"""
