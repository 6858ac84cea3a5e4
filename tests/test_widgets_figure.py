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


def test_layout_solved_again_only_when_it_would_change():
    """Issue 17: a render for new image data or colours keeps the last constrained layout
    (about half of a render); a zoom, a new label, a new size solve it again, and the axes
    then sit where a fresh figure's layout puts them."""
    import io

    import numpy as np

    from udfwidgets.widgets.figure import FigureHost

    host = FigureHost("agg", figsize=(4, 3), theme="light")
    ax = host.figure.add_subplot()
    im = ax.imshow(np.zeros((8, 8)))
    engine = host.figure.get_layout_engine()
    solved = []
    real = engine.execute
    engine.execute = lambda fig: (solved.append(1), real(fig))[1]

    def render() -> int:
        before = len(solved)
        host.figure.canvas.draw()
        return len(solved) - before

    assert render() == 1  # the first render solves it
    im.set_data(np.ones((8, 8)))
    im.set_clim(0, 2)
    host.style()  # colours only
    assert render() == 0
    assert render() == 0
    ax.set_xlim(2, 6)  # a zoom: other tick labels
    assert render() == 1
    ax.set_ylabel("scan y (nm)")
    assert render() == 1
    host.figure.set_size_inches(5, 3)
    assert render() == 1
    assert render() == 0
    # the kept layout is the layout: a figure made fresh in this state has its axes there
    fresh = FigureHost("agg", figsize=(5, 3), theme="light")
    fax = fresh.figure.add_subplot()
    fax.imshow(np.ones((8, 8)))
    fax.set_xlim(2, 6)
    fax.set_ylabel("scan y (nm)")
    fresh.figure.savefig(io.BytesIO(), format="png")
    np.testing.assert_allclose(
        ax.get_position().bounds, fax.get_position().bounds, rtol=0, atol=2e-3
    )


def test_blit_background_is_not_stale_after_a_refresh(ipympl):
    """A change shown with refresh() (its render not yet asked for by the page) is in the
    background the next blit draws on: the explorer's rubber band must never bring back
    the previous image."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from udfwidgets.widgets.figure import FigureHost

    host = FigureHost("ipympl", figsize=(2, 2), theme="light")
    canvas = host.figure.canvas
    canvas.syncing_data_url = False  # a page shows the figure
    canvas.send = lambda content=None, buffers=None: None
    ax = host.figure.add_subplot()
    im = ax.imshow(np.zeros((8, 8)), vmin=0, vmax=1)
    (band,) = ax.plot([1, 5], [1, 5], color="yellow")
    host.refresh(push=True)
    assert host.blit([band])  # background saved with the zeros
    im.set_data(np.ones((8, 8)))
    host.refresh()  # draw_idle: the page has not asked for the picture yet
    band.set_data([2, 6], [1, 5])
    assert host.blit([band])
    blitted = np.asarray(canvas.get_renderer().buffer_rgba()).copy()
    host.figure.keep_layout = True
    FigureCanvasAgg.draw(canvas)
    host.figure.keep_layout = False
    np.testing.assert_array_equal(blitted, np.asarray(canvas.get_renderer().buffer_rgba()))
    renders = host.figure.renders
    band.set_data([3, 6], [1, 5])
    assert host.blit([band]) and host.figure.renders == renders + 1  # the new background
    assert host.blit([band]) and host.figure.renders == renders + 1  # kept for the next
