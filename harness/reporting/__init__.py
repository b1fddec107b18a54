"""Results as data, and what is built from them: the results writer, the HTML report, run comparisons."""
