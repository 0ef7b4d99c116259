"""tests/browser/ holds the inputs of tests/test_browser.py, not tests of its own.

nbval collects every .ipynb under the test paths; the annotation notebook here only
makes sense inside the JupyterLab that the browser test starts (it reads the catalog
folder that test hands it and waits for clicks), so nbval must not run it.
"""

collect_ignore_glob = ["*.ipynb"]
