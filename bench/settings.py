"""aquadash's settings for bench/pages.py, with the URLs of bench/urls.py: aquadash's own and
/bench/bare/, the baseline every page is measured against. Only benchmarks use this module."""

from aquadash.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
