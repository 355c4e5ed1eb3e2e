"""jupyter_ext: the IPython display layer and extension of job-orchestra (inline graphs, live plans)."""
