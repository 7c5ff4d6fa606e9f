"""The model's internals: small modules, each one job, that the ``ASIF`` facade delegates to.

Nothing here imports :mod:`asif_qdrant.model`; every function takes the open model's
:class:`~asif_qdrant.retriever.state.ModelState`. From the bottom up (a module imports only
modules above it in this list, enforced by the import contracts in ``pyproject.toml``):

=================  ==========================================================================
``layout``         the one place that names collections and vectors, and catalog specs
``fingerprint``    what a model was built with (encoders, k, p, anchor set version)
``keys``           content keys of what is ingested, canonical point ids, image references
``state``          one open model: store, layout, fingerprint, settings, encoders, caches
``writes``         the one door for writes: every call that changes the store passes here
``pairs``          a few anchor pairs saved to a file (what an audit deleted) and read back
``anchors``        reading anchors; relative vectors (in-memory index or engine search)
``ingest``         what is already stored: keys looked up, ``on_duplicate``, default ids
``crossgap``       CSA vectors, caption vectors, query inversion (beyond plain ASIF)
``edits``          adding / deleting anchor pairs and keeping every catalog exact
``catalogs``       indexing items into catalogs, re-indexing, resumable index jobs
``calibration``    the calibrated "no match": a query's confidence against the anchors
``search``         catalog search: sparse, CSA or hybrid, with floors
``zeroshot``       zero-shot classification and its cached label prompts
``explain``        the anchor pairs behind a score, a label, or wrong predictions
``integrity``      finding and repairing what an interrupted edit left behind
=================  ==========================================================================
"""
