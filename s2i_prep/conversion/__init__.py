"""The stages of ``convert()`` (:mod:`s2i_prep.pipeline`), one module each, data flowing one way:

``config`` (what is asked) -> ``planning`` (which files) -> ``fingerprint`` (may a partial output
be resumed) -> ``tasks`` (worker side: file -> samples) -> ``assembly`` (ordered samples -> shards)
-> ``dataset_attrs`` (splits and attributes). ``stages`` holds the swappable functions they call.
"""
