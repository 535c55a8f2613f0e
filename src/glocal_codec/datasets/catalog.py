"""What the known evaluation datasets are: file names, download locations, checksums.

Everything here is *data* (names, URLs, digests), kept in one frozen table like the codec ids.

Kodak
    The Kodak Lossless True Color Image Suite, 24 images of 768 x 512 (six portrait), published
    by Eastman Kodak for unrestricted use and distributed by Rich Franzen at
    http://r0k.us/graphics/kodak/ (the PNGs at ``r0k.us/graphics/kodak/kodak/kodimNN.png``).

    ``sha256`` is the digest of the exact PNG bytes of the copy this project measures with
    (``../shared/data/kodak``, whose ``SHA256SUMS`` lists the same values). PNG bytes depend on the
    encoder that wrote them: the file at a given mirror (r0k.us included) may differ byte for byte
    while holding the very same pixels. So every file also carries ``pixels_sha256``: the sha256 of
    the decoded 8-bit RGB array (H x W x 3, row-major, ``numpy.asarray(img.convert("RGB")).tobytes()``),
    which is mirror-independent. A file passes verification when either digest matches.

CLIC 2020 validation
    The Challenge on Learned Image Compression 2020 (http://compression.cc) publishes its
    validation sets as two zip archives (URLs, byte sizes and sha256 as recorded by TensorFlow
    Datasets in ``tensorflow_datasets/url_checksums/clic.txt``):

    * professional: https://data.vision.ee.ethz.ch/cvl/clic/professional_valid_2020.zip (41 images)
    * mobile:       https://data.vision.ee.ethz.ch/cvl/clic/mobile_valid_2020.zip (61 images)

    The archives are verified as a whole (size + sha256); per-image digests of their members are
    not known to this project. Offline, only five CLIC images exist locally (see
    ``../shared/data/SOURCES.md``); they are listed in :data:`CLIC_LOCAL` by name with their
    digests, and are verified whenever a local ``clic/`` folder holds a file of that name.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FileSpec",
    "ArchiveSpec",
    "DatasetSpec",
    "KODAK",
    "CLIC_LOCAL",
    "CLIC_PROFESSIONAL_VALID_2020",
    "CLIC_MOBILE_VALID_2020",
    "DATASETS",
    "KODAK_URL",
]

#: Where the Kodak PNGs are downloaded from (``{nn}`` = 01 .. 24).
KODAK_URL = "http://r0k.us/graphics/kodak/kodak/kodim{nn}.png"


@dataclass(frozen=True)
class FileSpec:
    """One known image: its name, where to get it, and how to recognise it."""

    name: str
    sha256: str
    pixels_sha256: str
    width: int
    height: int
    url: str | None = None
    note: str = ""


@dataclass(frozen=True)
class ArchiveSpec:
    """A zip archive holding (part of) a dataset; members are extracted into ``subdir``."""

    url: str
    sha256: str
    size: int
    subdir: str
    images: int


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset.

    ``folder`` is the sub-folder looked for under ``--data-dir`` / ``$GLOCAL_CODEC_DATA`` and
    used under the download cache. ``complete`` says whether ``files`` *is* the dataset (Kodak:
    every file must be there) or only the files whose digests are known (CLIC: a local folder
    may hold more images, used unverified).
    """

    name: str
    folder: str
    description: str
    files: tuple[FileSpec, ...] = ()
    archives: tuple[ArchiveSpec, ...] = ()
    complete: bool = True

    def file(self, name: str) -> FileSpec | None:
        for f in self.files:
            if f.name == name:
                return f
        return None


def _kodak(nn: int, size: tuple[int, int], sha: str, pixels: str) -> FileSpec:
    return FileSpec(f"kodim{nn:02d}.png", sha, pixels, size[0], size[1], KODAK_URL.format(nn=f"{nn:02d}"))


_L = (768, 512)  # landscape, W x H
_P = (512, 768)  # portrait

KODAK = DatasetSpec(
    name="kodak",
    folder="kodak",
    description="Kodak Lossless True Color Image Suite, 24 images 768x512 (r0k.us)",
    files=(
        _kodak(1, _L, "6b4fbe6f3e8e0e20150d5b0c32248bf072e22b5989d415f96f796c5b7004a70f",
               "a00210743353594464ac67e680a41710f484444ca5f9dfddeb570de25c428273"),
        _kodak(2, _L, "1788370471429d992750a09caf6702ac74e56962447de02520d4b161738c0369",
               "ae5a495df4ec40e0941265440ccf98973915b4190ab803e37a23ca93dd43a07e"),
        _kodak(3, _L, "b9c800ee568f0b18c983817df08d9f7f24a7ddb3abfdc31bde9234c4fde83137",
               "234e61f585503f2a44400f5561131e8a512ef2c15328cd83d5cdbf10e2616cf2"),
        _kodak(4, _P, "0c60c62599ad33fd78b29c36013fbe4120946f6c327c0ef0ec6983297fb48d23",
               "e88e788fca00e6c723bb66ff45edb8cb56091ee284dcb73e3909834f2c96eeb6"),
        _kodak(5, _L, "ccf694ceb6bbf431e0009ed0d5573a8ff0915095b69ddfb527b91d8325897f5e",
               "ed3d1ee770909d3b27903b52ce19ee59a9bf24621a7bf1fb57b90677da880cb6"),
        _kodak(6, _L, "f4212cc927d1d579c712843cf8320c7eccb571e5ea80456022ffe99d67e9cd5d",
               "7f45158999fa297d1cfbd292b3e2f3f5b27770701c3473155c211c3f512cc97f"),
        _kodak(7, _L, "7cdd6d63ae0a245f6f9d983d740e11c6808c2efc24f8351aad9b5f676c27b55a",
               "4e3664bf6fe865b49f15f7b554efa7dbecaf73ae0e8699f2e307bf07849f1264"),
        _kodak(8, _L, "5a6a089bdb47605287c00d89ebf2a5312981eb998c94b5853d917c93a9066cdb",
               "889c3740e4ed54ca53d11ae735a44d15fa24fe312b3bd1609a80618a4092c208"),
        _kodak(9, _P, "4d8d801592aeaf446978bbd1c83b76c498242d0f684769311a4e7248289500bf",
               "f8453140e63a42301a6dbebb849a3cc40d34e4e59580eb1f372f7f5460df0dbe"),
        _kodak(10, _P, "7aca487dc83db732a5690b7affe8558e9dadf5bb44a4589ba2b607480a07228b",
               "fabe11b5c4f028394e093a5b5907e5fabc8072da0d5334fb3a38547a7e1be842"),
        _kodak(11, _L, "c7c02bd6e942d1181518e3ce2d97cf0451e4494a5e9d6ddee276940e4875d746",
               "ab4dd9bf8431e717d33892b3ba03c63bfea3c7fa72c2610010de7df3c194c075"),
        _kodak(12, _L, "df571f5e66d1aefd764ea77855e81e3be61528c34962a0fd1d50557502162c1e",
               "f412db2168e599949aac26bd3264f111b23a684f30a21cfd320e9e95bc69bbae"),
        _kodak(13, _L, "797949ce1152ef157ff0a1231c95cb8ed7641615e0b0f5f77f851a44aee19e8d",
               "875703d56fb9396f478b5d7d3b18e2b77c17147a685c6dc2567e1c574aaf01e3"),
        _kodak(14, _L, "08a1898d5702f32e7d9f94a94651d74a62cb9325475775a558b388c8d98f1846",
               "2bd5029ee75ac1697542e5b05624e8afe186e3250abd7513d6a806b52084c2f0"),
        _kodak(15, _L, "416c475f39b0eb9203ce7f77d2af8824f5bffc1a86a4605865017f04c41639b9",
               "b5353e7511277009922ecbdebfc6418fec53aa1b2a08d44fc957a7540825697b"),
        _kodak(16, _L, "5d03303693decdf7a1e1e930b5ca6684283aa80a9e7d8d6a842a74fa5f790640",
               "ed21745fd32fce95cc2c6af7fc52b1b15e590c7a14ab18ab34bd65ecaf955ac7"),
        _kodak(17, _P, "19d90e98e5835efae20a6e17e22e5ac6814ee2c8efb32d188ea4359abaf9f5bd",
               "566bc866664e9b06dc86e2654051b454844efe17322dbf7e24156d8243f1943e"),
        _kodak(18, _P, "83df267dfec61e9b9d3756c422502160b2fab595650c73a8b12940540ad09ec5",
               "3475af71066f3ca8206eb12cfc989ebe9c6e44820a96604e88ae018606e1f7bd"),
        _kodak(19, _P, "86560efe85a13413b228ef7e42dde0d439b25a94fb8e2d6fb1dc1631cf48853b",
               "7956408ef24222d37ac53f579bd24d5b2c3557b16c657e8b71c1b6ae9f18de1b"),
        _kodak(20, _L, "1ae187d92b3a4483b6717f7fd08592846ffdfc340c6424f6756627a27f3d8ea7",
               "666ce8f2db5566a123bb081e70618f6f4c4253df960f3b41bb9dcc3dd134f3cf"),
        _kodak(21, _L, "26e193795108c4b5ec47206ae4ff07a353d2492947f7a7ae8d380e042b74027b",
               "2d6902daf7c4486b7c8c04d834091841a2b38c8f0c81cd7a963a6510b34a2a6a"),
        _kodak(22, _L, "627b76fccf714b4ddffb739b2eb63ba2817cf5b5a8e222079542dcf2cfdda939",
               "f430842120c108b67725ada96b8b7b2a914f6a0915eacd5595064c6c1a5d70a0"),
        _kodak(23, _L, "85c67d7ea758cb0604fb6980ab0c65091a2eefa7b3b50cbb1bc702a60206dfe5",
               "81992a83592267e69125666f3e3e04c1819529b4c4c1e55fde0a6a741bac4219"),
        _kodak(24, _L, "9f1c26df52217bd49f998a720a2ffeba41a535cf826f4ae32e355fb2b0bbc0fe",
               "e3e3ccc3e795b82a3da66934409dfe98ce0f5aadc6d7767543c506453599bb98"),
    ),
)

#: The five CLIC images available offline (``../shared/data/clic``), by name with digests.
#: Provenance per file: see ``../shared/data/SOURCES.md``. None has a known official URL of its own.
CLIC_LOCAL: tuple[FileSpec, ...] = (
    FileSpec("CLIC2020_18.png", "397f4ef7900802c8c225e6dc36cabe529e641e4806af0a962e6f0f9d596a1faa",
             "467e9420453f82d0d157bbdc91d588d3a3072904945ca02134bd57ec0a784585", 1391, 1738,
             note="labelled CLIC-2020 by HiFiC (Justin-Tan/high-fidelity-generative-compression)"),
    FileSpec("CLIC2020_3.png", "67d1a8453be22b5f7a9155d9d7c6a0027cfabf36e9f27df673d5d9091b31db71",
             "7132937ef6b208030a45dcc93d74e8a9ef20cccae49a2b90372f5aa0f2a41498", 1365, 2048,
             note="labelled CLIC-2020 by HiFiC"),
    FileSpec("CLIC2020_5.png", "9b011083b1c1de7b1e0d92520a1badc3a8a1288fa31c7558212181fa4e48c442",
             "c389b6f3cd9f51465bbd258315de211b2fa1ff384e45fcc3746e47f771a736c0", 1365, 2048,
             note="labelled CLIC-2020 by HiFiC"),
    FileSpec("alberto-montalesi-176097.png", "16390a28cc66c30786e14f300b1904c07acf3b92c4cc13203739025076dee31d",
             "3510902dc65bc579b2759c3bccfc9d7878a7da8c7d6be9b654ec7e12e207bf61", 2048, 1363,
             note="a CLIC professional-validation file name"),
    FileSpec("jacob-aguilar-friend-343.png", "6863d7bbd4a80aeef4bedb9e4d13c28b7fb300a6431f893e32beae7740cf457b",
             "8300a29465cb765dbab707c3d5a5cd1fcd0e62f944311b19b1b71218da2310ee", 1152, 768,
             note="probably CLIC-2018 professional (not confirmed)"),
)

CLIC_PROFESSIONAL_VALID_2020 = ArchiveSpec(
    url="https://data.vision.ee.ethz.ch/cvl/clic/professional_valid_2020.zip",
    sha256="00be38092ade2ab5163b65f7f6523d46c7bca147007f559adbb02c0afc236b7d",
    size=134834429,
    subdir="professional",
    images=41,
)
CLIC_MOBILE_VALID_2020 = ArchiveSpec(
    url="https://data.vision.ee.ethz.ch/cvl/clic/mobile_valid_2020.zip",
    sha256="ff0280382eeb32fdceb28c81a7f47ac9ad86d933ebe901680845635d04e47a10",
    size=236556531,
    subdir="mobile",
    images=61,
)

_CLIC_DOC = ("CLIC 2020 validation (professional + mobile); offline: the local clic/ folder, "
             "5 images verified by name")

#: Every dataset ``--dataset`` accepts.
DATASETS: dict[str, DatasetSpec] = {
    "kodak": KODAK,
    "clic": DatasetSpec("clic", "clic", _CLIC_DOC, CLIC_LOCAL,
                        (CLIC_PROFESSIONAL_VALID_2020, CLIC_MOBILE_VALID_2020), complete=False),
    "clic-professional": DatasetSpec("clic-professional", "clic", "CLIC 2020 professional validation (41 images)",
                                     CLIC_LOCAL, (CLIC_PROFESSIONAL_VALID_2020,), complete=False),
    "clic-mobile": DatasetSpec("clic-mobile", "clic", "CLIC 2020 mobile validation (61 images)",
                               CLIC_LOCAL, (CLIC_MOBILE_VALID_2020,), complete=False),
}
