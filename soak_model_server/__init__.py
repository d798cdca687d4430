"""A TF Serving-compatible model server on the real TensorFlow runtime (the stand-in).

Shaped like TF Serving: a file-system source aspires versions, a manager loads
and unloads them, a REST front serves them.
"""
