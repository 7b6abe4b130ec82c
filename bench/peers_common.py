"""What the GPU peer scripts share: one peer's benchmarks run into the results, where a
failure becomes "PEER:error" (the message) instead of ending the script, and a peer whose
package does not import is left out."""


def run_peer(res, name, bench, module=None):
    """Runs `bench()` (when `module`, if named, imports); an exception goes to
    res[name + ":error"]."""
    if module is not None:
        try:
            __import__(module)
        except Exception:
            return
    try:
        bench()
    except Exception as e:
        res[name + ":error"] = repr(e)[:300]
