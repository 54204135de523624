"""tfc_codecs: learned image codecs on tensorflow-compression."""

import setuptools

TRAIN = [
    "tensorflow==2.14.1",
    "tensorflow-compression==2.14.1",
    "tensorflow-probability==0.22.1",
    "tensorflow-datasets==4.9.10",
    "tensorflow-metadata==1.17.3",  # 1.21 fails to import with protobuf 4.25.
    "scipy==1.11.4",  # tensorflow-compression needs ~=1.11; pinned exactly so pip 23 resolves it.
    "numpy<2",
    "tensorflow-serving-api==2.14.1",
]

setuptools.setup(
    name="tfc_codecs",
    version="0.5.0",
    description="Learned image codecs (Ballé 2017/2018, Minnen & Singh 2020) on "
                "tensorflow-compression, with a CLI, a bitstream container and shipped models.",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["tfc_codecs", "tfc_codecs.*"]),
    package_data={"tfc_codecs": ["zoo/index.json", "zoo/*/*/model.json",
                                 "zoo/*/*/weights.npz", "zoo/*/*/stock_export/*",
                                 "zoo/*/*/stock_export/assets.extra/*"]},
    # The plain install: the shipped models' stock-op exports on any TensorFlow
    # from 2.14 on (tfc_codecs/tfc_stack.py says what needs the [train] extra).
    install_requires=[
        "tensorflow>=2.14",
        "numpy",
        "absl-py",
        "pillow>=11.3",  # AVIF, WebP and JPEG 2000 built in.
        "matplotlib",  # R–D plots (tfc_codecs plot).
        "tqdm",  # Progress bars (tfc_codecs evaluate).
        "scipy",  # PCHIP interpolation of tfc_codecs bdrate.
        "tensorflow-serving-api>=2.14",  # tfc_codecs serve/client: TF Serving's protos and gRPC stubs.
    ],
    extras_require={
        # Training, models built from weights, the range coder (--ops tfc):
        # tensorflow-compression 2.14.1 pins TensorFlow 2.14 (Keras 2, Python 3.11).
        "train": TRAIN,
        "test": TRAIN + ["pytest", "hypothesis"],  # hypothesis: stock-coder property tests.
    },
    entry_points={"console_scripts": ["tfc_codecs=tfc_codecs.cli:run"]},
    scripts=[],
)
