"""Rendering of stored results: HTML pages (jinja2 templates in ``templates/``), the paper's
tables, and the commands that make them, registered with egobench through the
``egobench.commands`` entry-point group: ``egobench report`` (:mod:`reports.cli`) and
``egobench demo`` (:mod:`reports.demo`). egobench itself imports nothing from here."""
