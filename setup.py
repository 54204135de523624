"""tfc_codecs: learned image codecs on tensorflow-compression."""

import setuptools

setuptools.setup(
    name="tfc_codecs",
    version="0.4.0",
    description="Learned image codecs (Ballé 2017/2018) on tensorflow-compression, "
                "with a CLI, a bitstream container and shipped models.",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=setuptools.find_packages(include=["tfc_codecs", "tfc_codecs.*"]),
    package_data={"tfc_codecs": ["zoo/index.json", "zoo/*/*/model.json",
                                 "zoo/*/*/weights.npz"]},
    install_requires=[
        "tensorflow==2.14.1",
        "tensorflow-compression==2.14.1",
        "tensorflow-probability==0.22.1",
        "tensorflow-datasets==4.9.10",
        "tensorflow-metadata==1.17.3",  # 1.21 fails to import with protobuf 4.25.
        "scipy==1.11.4",  # tensorflow-compression needs ~=1.11; pinned exactly so pip 23 resolves it.
        "numpy<2",
        "absl-py",
        "pillow>=11.3",  # AVIF, WebP and JPEG 2000 built in.
        "matplotlib",  # R–D plots (tfc_codecs plot).
        "tqdm",  # progress bars (tfc_codecs evaluate); tensorflow-datasets needs it too.
        "tensorflow-serving-api==2.14.1",  # tfc_codecs serve/client: TF Serving's protos and gRPC stubs.
    ],
    extras_require={"test": ["pytest", "hypothesis"]},  # hypothesis: stock-coder property tests.
    entry_points={"console_scripts": ["tfc_codecs=tfc_codecs.cli:run"]},
    scripts=[],
)
