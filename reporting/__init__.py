"""Pictures of the data and of a run: ``python -m reporting.explore`` and ``python -m reporting``.

* :mod:`reporting.explore`: a clickstream's shape (ours or OTTO's) as PNGs and a JSON summary;
* :mod:`reporting.slates`: the recommendations topic summed up into ``reports/slates.json``;
* ``python -m reporting`` (:mod:`reporting.page`): ``reports/index.html``, one static page of
  everything a run left in ``reports/``;
* :mod:`reporting.browser`: opens a page in headless Chromium and reports console errors,
  images that did not load and a screenshot (the browser test uses it).

docs/report.md is the user's guide.
"""
