"""Which pictures the project trains, validates and tests on.

Training photos come from pinned Debian wallpaper packages (scripts/fetch_data.py downloads them). The
packages also hold drawn, rendered and heavily edited pictures; those would teach the network the statistics
of flat vector art, so only photographs are kept. Both lists are explicit, judged by looking at every
picture once: a new package version with a file in neither list makes the fetch script stop, not guess.

The test images are classic restoration test photos (sporco's copies of barbara, kodim23 and three Waterloo
BragZone images) and scikit-image's bundled colour photos. None of them is in any training package.
"""
from __future__ import annotations

# Debian package -> pinned version, the folder inside the package, and the photographs kept from it.
# For plasma-workspace-wallpapers a name is a wallpaper folder (<name>/contents/images/<W>x<H>.<ext>) and
# only its largest size is kept; the smaller sizes are rescaled copies (most are symlinks).
DEBIAN_SOURCES: dict[str, dict] = {
    "mate-backgrounds": {
        "version": "1.26.0-1",
        "folder": "usr/share/backgrounds/mate/nature",
        "default_licence": "GPL-2+",    # for Garden, LadyBird, YellowFlower: unlisted in debian/copyright, whose every stanza is GPL-2+
        "photos": ["Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg", "Garden.jpg", "GreenMeadow.jpg",
                   "LadyBird.jpg", "RainDrops.jpg", "Storm.jpg", "TwoWings.jpg", "Wood.jpg",
                   "YellowFlower.jpg"],
    },
    "lomiri-wallpapers-16.04": {
        "version": "20.04.0-2",
        "folder": "usr/share/backgrounds",
        "default_licence": "",
        "photos": ["Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Picture_0B_by_freespace.jpg",
                   "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
                   "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg",
                   "greentock_by_Peter_Nerlich.jpg", "life_by_Aitzol_Berasategi.jpg",
                   "picosdeeuropa_by_Aitzol_Berasategi.jpg", "seeding_by_Clements_Engelhardt.jpg",
                   "sunset_by_Aitzol_Berasategi.jpg"],
    },
    "lomiri-wallpapers-20.04": {
        "version": "20.04.0-2",
        "folder": "usr/share/backgrounds",
        "default_licence": "",
        "photos": ["Kleiber_by_Lukas_Baubkus.jpg"],
    },
    "plasma-workspace-wallpapers": {
        "version": "4:5.27.5-2",
        "folder": "usr/share/wallpapers",
        "default_licence": "",          # each wallpaper's metadata.json names its licence
        "photos": ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
                   "Grey", "Kite", "OneStandsOut", "Path", "summer_1am"],
    },
}

# Pictures of the same folders that are deliberately left out, with the reason.
EXCLUDED: dict[str, dict[str, str]] = {
    "mate-backgrounds": {},             # only nature/ is read; abstract/ and desktop/ are all drawn
    "lomiri-wallpapers-16.04": {
        "analogpattern_by_Peter_Nerlich.jpg": "texture photo under a rainbow colour overlay",
        "umang_by_Abhishek_Mudgal.jpg": "abstract colour gradient",
    },
    "lomiri-wallpapers-20.04": {
        "Fossa_by_Jasper_Roks.jpg": "rendered abstract",
        "Infinite-Sea_by_Aury88.jpg": "digital art",
        "Painting-Colors_by__herobrine7gamer.jpg": "flat vector stripes",
    },
    "plasma-workspace-wallpapers": {
        name: "rendered or drawn" for name in (
            "Altai", "Autumn", "Canopee", "Cascade", "Cluster", "Elarun", "Flow", "FlyingKonqui", "Honeywave",
            "IceCold", "Kay", "Kokkini", "MilkyWay", "Opal", "PastelHills", "Patak", "SafeLanding", "Shell",
            "Volna")
    },
}

# Held out from training for validation: one per source family, different scenes (forest, mountains,
# macro, indoor colour).
VAL_NAMES: tuple[str, ...] = ("Path.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg", "LadyBird.jpg",
                              "ColorfulCups.jpg")

# Test images: file name in data/test -> where it comes from.
SPORCO = {"package": "sporco", "version": "0.2.2.post1"}
SPORCO_TEST = {
    "barbara.png": "attributed to Allen Gersho; believed freely redistributable (sporco data/README.rst)",
    "kodim23.png": "Kodak test image, released for unrestricted use (sporco data/README.rst)",
    "monarch.png": "Waterloo BragZone, free of copyright restrictions (sporco data/README.rst)",
    "sail.png": "Waterloo BragZone, free of copyright restrictions (sporco data/README.rst)",
    "tulips.png": "Waterloo BragZone, free of copyright restrictions (sporco data/README.rst)",
}
SKIMAGE_TEST = {
    "astronaut.png": "public domain (NASA), per skimage.data.astronaut",
    "chelsea.png": "CC0 (Stefan van der Walt), per skimage.data.chelsea",
    "coffee.png": "CC0 (Rachel Michetti), per skimage.data.coffee",
    "rocket.jpg": "public domain (SpaceX), per skimage.data.rocket",
    "motorcycle_left.png": "Middlebury 2014 stereo data set (Scharstein et al.), down-sampled, shipped with "
                           "scikit-image (BSD-3-Clause); no separate licence stated",
}
TEST_NAMES: tuple[str, ...] = tuple(SPORCO_TEST) + tuple(SKIMAGE_TEST)
# Clean textures for --clean-textures (data/textures/, never degraded): fine repeated structure that a derain
# model trained on rain pairs alone takes for rain (the gate's barbara lost its stripes). Grey, 512 x 512.
SKIMAGE_TEXTURES = {
    "brick.png": "CC0, per skimage.data.brick",
    "grass.png": "CC0, per skimage.data.grass",
    "gravel.png": "CC0, per skimage.data.gravel",
}


def stored_name(package: str, photo: str, suffix: str) -> str:
    """The file name a kept photo gets in data/: plasma files are named WxH, so they take the wallpaper's name."""
    return f"{photo}{suffix}" if package == "plasma-workspace-wallpapers" else photo


def split_of(name: str) -> str:
    if name in SKIMAGE_TEXTURES:
        return "textures"
    if name in TEST_NAMES:
        return "test"
    return "val" if name in VAL_NAMES else "train"
