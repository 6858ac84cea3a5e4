"""The package surface: public names, a light import, the version."""

import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys, udfwidgets; "
        "heavy = [m for m in ('matplotlib', 'ipywidgets', 'ipympl', 'distributed', 'tqdm') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names():
    import udfwidgets
    from udfwidgets import UDF, BufferWrapper, Context, UDFResults  # noqa: F401
    from udfwidgets.udf import UDF as UDF2
    from udfwidgets.udf.sum import SumUDF  # noqa: F401
    from udfwidgets.udf.sumsigudf import SumSigUDF  # noqa: F401

    assert UDF is UDF2
    assert udfwidgets.__version__
