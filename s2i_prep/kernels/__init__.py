"""All Numba code of s2i_prep lives in this package; no other module imports numba.

Kernels take and return plain arrays and scalars and never raise: parse kernels return a status
code and a byte offset, and the Python wrappers in ``readers/`` build the error messages.
"""
