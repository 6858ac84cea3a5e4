"""FigureHost's environment choices leave matplotlib's global backend alone."""

import subprocess
import sys
import textwrap


def test_using_ipympl_does_not_make_it_the_global_backend():
    # Importing ipympl.backend_nbagg sets rcParams["backend"] to ipympl; after that every
    # backend="auto" figure outside a kernel (and the user's pyplot) would use ipympl.
    # A fresh interpreter: other tests may have imported ipympl already.
    code = textwrap.dedent(
        """
        import matplotlib
        from udfwidgets.widgets.figure import FigureHost, resolve_backend

        before = matplotlib.rcParams._get_backend_or_none()  # None, or MPLBACKEND's
        assert "ipympl" not in str(before)
        assert resolve_backend("ipympl") == "ipympl"  # checks that ipympl imports
        host = FigureHost(backend="ipympl")  # an ipympl canvas, made outside a kernel
        assert type(host.figure.canvas).__module__ != "matplotlib.backends.backend_agg"
        assert matplotlib.rcParams._get_backend_or_none() == before, matplotlib.get_backend()
        assert resolve_backend("auto") == "agg"
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
