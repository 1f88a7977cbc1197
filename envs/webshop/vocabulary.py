"""The word lists the catalog generator draws from: product types, attributes, options.

Each :class:`ProductType` is one kind of product (say, "hair extension") with its category
path, search query, the nouns of its titles, a pool of attributes and option groups, and a
price band. Types of one category share path levels and often title nouns ("hair spray" vs
"hair brush", "shoe rack" vs "running shoe"), so the catalog has the near-miss distractors
that make WebShop hard: a matching noun, a matching category, a wrong attribute.

Every option value is one its own goal can match under the reward's rules (WebShop's
colour scan turns "dark wash" into "ash", which no named goal option "color: dark wash"
matches, so such values are not used).

Example:
    >>> types = [t for t in PRODUCT_TYPES if t.category == "beauty"]
    >>> len(types) >= 8, types[0].path[0]
    (True, 'beauty & personal care')
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BRANDS", "COLORS", "PRODUCT_TYPES", "STYLE_WORDS", "ProductType"]


@dataclass(frozen=True, slots=True)
class ProductType:
    """One kind of product.

    Attributes:
        category: WebShop's top-level category (beauty, food, fashion, furniture, electronics).
        path: The category path (``product_category`` is ``" › ".join(path)``).
        query: The search query the product was "found" with (WebShop's ``query`` field).
        noun: The head noun phrase used in titles and instructions.
        nouns: The nouns of ``noun`` (title-noun overlap of the type reward).
        attributes: Attributes a product of this type may have.
        options: Option groups (name -> possible values).
        price: Lowest and highest price in dollars.
    """

    category: str
    path: tuple[str, ...]
    query: str
    noun: str
    nouns: tuple[str, ...]
    attributes: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]
    price: tuple[float, float]


COLORS: tuple[str, ...] = (
    "black", "white", "gray", "navy blue", "light blue", "red", "burgundy", "pink", "beige",
    "brown", "green", "olive green", "purple", "yellow", "orange", "silver", "gold", "ivory",
    "teal", "khaki",
)  # fmt: skip

_CLOTHING_SIZES = ("x-small", "small", "medium", "large", "x-large", "xx-large", "3x-large")
_SHOE_SIZES = tuple(f"{s}" for s in ("6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "11"))
_PACKS = ("pack of 1", "pack of 2", "pack of 3", "pack of 4", "pack of 6", "pack of 12")
_VOLUMES = ("2 fl oz", "4 fl oz", "8 fl oz", "12 fl oz", "16 fl oz", "32 fl oz")
_WEIGHTS = ("4 ounce", "8 ounce", "12 ounce", "1 pound", "2 pound", "5 pound")
_SCENTS = ("lavender", "vanilla", "citrus", "unscented", "coconut", "eucalyptus", "rose")
_FLAVORS = ("original", "chocolate", "vanilla", "strawberry", "peanut butter", "sea salt",
            "honey", "cinnamon", "mixed berry")  # fmt: skip
_FURNITURE_SIZES = ("small", "medium", "large", "twin", "full", "queen", "king")
_CAPACITY = ("32gb", "64gb", "128gb", "256gb", "512gb", "1tb")
_LENGTHS = ("3 ft", "6 ft", "10 ft", "15 ft")


def _type(
    category: str,
    path: str,
    query: str,
    noun: str,
    attributes: str,
    options: dict[str, tuple[str, ...]],
    price: tuple[float, float],
) -> ProductType:
    return ProductType(
        category=category,
        path=tuple(part.strip() for part in path.split("›")),
        query=query,
        noun=noun,
        nouns=tuple(word for word in noun.replace("-", " ").split() if len(word) > 2),
        attributes=tuple(a.strip() for a in attributes.split(",")),
        options=tuple(options.items()),
        price=price,
    )


_B = "beauty & personal care"
_F = "grocery & gourmet food"
_C = "clothing, shoes & jewelry"
_H = "home & kitchen › furniture"
_E = "electronics"

PRODUCT_TYPES: tuple[ProductType, ...] = (
    # beauty
    _type("beauty", f"{_B} › hair care › hair extensions", "hair extensions",
          "clip-in hair extension", "natural looking, long lasting, heat resistant, easy to "
          "use, human hair, synthetic hair", {"color": COLORS[:10], "size": ("14 inch",
          "18 inch", "22 inch", "26 inch")}, (15, 90)),
    _type("beauty", f"{_B} › hair care › styling products › hair sprays", "hair spray",
          "hair spray", "long lasting, alcohol free, paraben free, strong hold, natural "
          "ingredients, travel size", {"size": _VOLUMES, "scent": _SCENTS}, (5, 30)),
    _type("beauty", f"{_B} › hair care › styling tools › brushes", "hair brush",
          "detangling hair brush", "easy to use, anti static, wet and dry hair, travel size, "
          "natural hair", {"color": COLORS[:8]}, (6, 35)),
    _type("beauty", f"{_B} › hair care › shampoo & conditioner › shampoos", "shampoo",
          "moisturizing shampoo", "sulfate free, paraben free, dry hair, natural ingredients, "
          "color safe, cruelty free", {"size": _VOLUMES, "scent": _SCENTS}, (6, 45)),
    _type("beauty", f"{_B} › skin care › face › moisturizers", "face moisturizer",
          "face moisturizer cream", "fragrance free, dry skin, sensitive skin, oil free, "
          "anti aging, hyaluronic acid, cruelty free", {"size": ("1 fl oz", "1.7 fl oz",
          "2.5 fl oz", "4 fl oz")}, (8, 60)),
    _type("beauty", f"{_B} › skin care › body › body lotions", "body lotion",
          "body lotion", "dry skin, shea butter, fragrance free, non greasy, paraben free, "
          "natural ingredients", {"size": _VOLUMES, "scent": _SCENTS}, (5, 30)),
    _type("beauty", f"{_B} › makeup › lips › lipstick", "lipstick", "matte lipstick",
          "long lasting, cruelty free, paraben free, highly pigmented, moisturizing",
          {"color": ("red", "pink", "nude", "burgundy", "coral", "plum", "berry")}, (5, 35)),
    _type("beauty", f"{_B} › makeup › eyes › mascara", "mascara", "waterproof mascara",
          "long lasting, cruelty free, smudge proof, easy to remove, sensitive eyes",
          {"color": ("black", "brown", "black brown")}, (5, 28)),
    _type("beauty", f"{_B} › personal care › deodorants & antiperspirants", "deodorant",
          "natural deodorant stick", "aluminum free, paraben free, long lasting, sensitive "
          "skin, cruelty free", {"scent": _SCENTS, "size": _PACKS[:4]}, (5, 25)),
    _type("beauty", f"{_B} › oral care › toothbrushes", "electric toothbrush",
          "electric toothbrush", "rechargeable, travel case, sensitive teeth, long battery "
          "life, easy to use", {"color": ("white", "black", "pink", "blue")}, (20, 120)),
    # food
    _type("food", f"{_F} › snacks & sweets › chips & crisps", "potato chips",
          "kettle cooked potato chips", "gluten free, non gmo, low sodium, vegan, individually"
          " wrapped", {"flavor": _FLAVORS, "size": _PACKS}, (3, 30)),
    _type("food", f"{_F} › snacks & sweets › snack bars › protein bars", "protein bars",
          "protein bar", "gluten free, low sugar, high protein, keto friendly, non gmo, "
          "individually wrapped", {"flavor": _FLAVORS, "size": _PACKS}, (10, 45)),
    _type("food", f"{_F} › beverages › coffee › ground coffee", "ground coffee",
          "ground coffee", "organic, fair trade, dark roast, medium roast, low acid, "
          "decaffeinated", {"size": _WEIGHTS, "flavor": ("original", "vanilla", "hazelnut",
          "caramel", "mocha")}, (7, 40)),
    _type("food", f"{_F} › beverages › tea › green tea", "green tea", "green tea bags",
          "organic, caffeine free, non gmo, natural ingredients, sugar free",
          {"flavor": ("original", "jasmine", "mint", "lemon", "honey"), "size": _PACKS}, (4, 30)),
    _type("food", f"{_F} › pantry staples › nut butters › peanut butter", "peanut butter",
          "creamy peanut butter", "non gmo, no added sugar, gluten free, high protein, "
          "keto friendly, organic", {"size": _WEIGHTS, "flavor": ("smooth", "crunchy",
          "honey", "chocolate")}, (4, 25)),
    _type("food", f"{_F} › snacks & sweets › chocolate", "dark chocolate",
          "dark chocolate bar", "sugar free, vegan, fair trade, keto friendly, gluten free, "
          "individually wrapped", {"flavor": ("sea salt", "almond", "orange", "mint",
          "original", "raspberry"), "size": _PACKS}, (4, 35)),
    _type("food", f"{_F} › pantry staples › herbs, spices & seasonings", "seasoning",
          "seasoning blend", "low sodium, gluten free, non gmo, no msg, organic",
          {"flavor": ("garlic", "lemon pepper", "smoky", "cajun", "italian"),
           "size": _WEIGHTS[:4]}, (3, 20)),
    _type("food", f"{_F} › snacks & sweets › dried fruits & nuts › nuts", "mixed nuts",
          "roasted mixed nuts", "low sodium, non gmo, keto friendly, high protein, resealable "
          "bag", {"flavor": ("sea salt", "unsalted", "honey", "smoky"), "size": _WEIGHTS},
          (6, 40)),
    # fashion
    _type("fashion", f"{_C} › men › clothing › shirts › t-shirts", "men t shirt",
          "men's crew neck t-shirt", "machine wash, cotton, short sleeve, slim fit, "
          "moisture wicking, relaxed fit", {"color": COLORS, "size": _CLOTHING_SIZES}, (8, 35)),
    _type("fashion", f"{_C} › women › clothing › tops, tees & blouses", "women blouse",
          "women's chiffon blouse", "machine wash, long sleeve, loose fit, button down, "
          "hand wash, polyester", {"color": COLORS, "size": _CLOTHING_SIZES}, (12, 45)),
    _type("fashion", f"{_C} › women › clothing › dresses", "women dress",
          "women's summer dress", "machine wash, short sleeve, v neck, high waist, flowy, "
          "with pockets", {"color": COLORS, "size": _CLOTHING_SIZES}, (15, 60)),
    _type("fashion", f"{_C} › men › shoes › athletic › running", "men running shoes",
          "men's running shoe", "non slip, breathable, lightweight, rubber sole, arch "
          "support, memory foam", {"color": COLORS[:9], "size": _SHOE_SIZES}, (25, 120)),
    _type("fashion", f"{_C} › women › shoes › sandals", "women sandals",
          "women's flat sandal", "non slip, open toe, rubber sole, arch support, ankle "
          "strap, comfortable", {"color": COLORS[:9], "size": _SHOE_SIZES}, (15, 70)),
    _type("fashion", f"{_C} › men › clothing › pants › jeans", "men jeans",
          "men's straight fit jeans", "machine wash, stretch, slim fit, relaxed fit, button "
          "closure, cotton", {"color": ("dark indigo", "light blue", "black", "medium gray"),
          "size": ("30w x 30l", "32w x 30l", "32w x 32l", "34w x 32l", "36w x 32l")}, (20, 70)),
    _type("fashion", f"{_C} › women › accessories › handbags › shoulder bags",
          "women shoulder bag", "women's leather shoulder bag", "faux leather, adjustable "
          "strap, zipper closure, large capacity, water resistant", {"color": COLORS[:12]},
          (20, 90)),
    _type("fashion", f"{_C} › women › clothing › socks & hosiery", "women socks",
          "women's ankle socks", "machine wash, moisture wicking, cotton, non slip, "
          "breathable", {"color": ("white", "black", "gray", "multicolor"),
                         "size": _PACKS}, (6, 25)),
    # furniture
    _type("furniture", f"{_H} › living room furniture › sofas & couches", "sofa couch",
          "loveseat sofa couch", "easy assembly, solid wood frame, high density foam, "
          "removable cushions, living room, mid century", {"color": COLORS[:10]}, (200, 900)),
    _type("furniture", f"{_H} › living room furniture › tables › coffee tables",
          "coffee table", "wooden coffee table", "easy assembly, solid wood, storage space, "
          "living room, mid century, metal frame", {"color": ("walnut", "black", "white",
          "oak", "rustic brown")}, (60, 300)),
    _type("furniture", f"{_H} › bedroom furniture › beds, frames & bases", "bed frame",
          "platform bed frame", "easy assembly, solid wood, metal frame, storage space, no "
          "box spring needed, noise free", {"size": ("twin", "full", "queen", "king"),
          "color": ("black", "white", "walnut", "gray")}, (120, 600)),
    _type("furniture", f"{_H} › home office furniture › office chairs", "office chair",
          "ergonomic office chair", "lumbar support, height adjustable, easy assembly, "
          "breathable mesh, high back, swivel", {"color": ("black", "gray", "white", "blue",
          "pink")}, (60, 350)),
    _type("furniture", f"{_H} › entryway furniture › shoe racks", "shoe rack",
          "bamboo shoe rack", "easy assembly, space saving, solid wood, metal frame, "
          "stackable", {"size": ("2 tier", "3 tier", "4 tier", "5 tier"),
                        "color": ("natural", "black", "white")}, (15, 80)),
    _type("furniture", f"{_H} › bedroom furniture › dressers", "dresser",
          "6 drawer dresser", "easy assembly, solid wood, storage space, anti tip, metal "
          "handles", {"color": ("white", "black", "walnut", "gray", "oak")}, (90, 450)),
    _type("furniture", f"{_H} › home office furniture › desks", "computer desk",
          "computer desk", "easy assembly, storage space, metal frame, space saving, "
          "height adjustable", {"size": ("40 inch", "47 inch", "55 inch", "63 inch"),
          "color": ("black", "white", "walnut", "rustic brown")}, (50, 300)),
    # electronics
    _type("electronics", f"{_E} › headphones, earbuds & accessories › earbuds",
          "wireless earbuds", "wireless bluetooth earbuds", "noise cancelling, long battery "
          "life, water resistant, fast charging, hands free, charging case",
          {"color": ("black", "white", "blue", "pink")}, (15, 150)),
    _type("electronics", f"{_E} › headphones, earbuds & accessories › headphones",
          "over ear headphones", "over-ear bluetooth headphones", "noise cancelling, long "
          "battery life, foldable, high fidelity, built in microphone",
          {"color": ("black", "white", "silver", "navy blue")}, (30, 250)),
    _type("electronics", f"{_E} › computers & accessories › cables › usb cables",
          "usb c cable", "usb-c charging cable", "fast charging, braided, high speed, "
          "durable, data transfer", {"size": _LENGTHS, "color": ("black", "white", "red",
          "gray")}, (5, 25)),
    _type("electronics", f"{_E} › computers & accessories › data storage › usb flash "
          "drives", "usb flash drive", "usb flash drive", "high speed, usb 3.0, durable, "
          "plug and play, portable", {"size": _CAPACITY[:5], "color": ("black", "silver",
          "blue")}, (6, 60)),
    _type("electronics", f"{_E} › portable audio & video › portable speakers",
          "bluetooth speaker", "portable bluetooth speaker", "water resistant, long battery "
          "life, high fidelity, easy to carry, built in microphone", {"color": ("black",
          "blue", "red", "gray", "green")}, (20, 180)),
    _type("electronics", f"{_E} › cell phones & accessories › cases", "phone case",
          "shockproof phone case", "shock absorbing, slim fit, wireless charging, easy to "
          "install, scratch resistant", {"color": COLORS[:12], "size": ("iphone 13",
          "iphone 14", "iphone 15", "galaxy s23", "pixel 8")}, (6, 40)),
    _type("electronics", f"{_E} › computers & accessories › keyboards, mice & "
          "accessories › keyboards", "wireless keyboard", "wireless keyboard",
          "easy to use, long battery life, quiet keys, compact, plug and play",
          {"color": ("black", "white", "gray", "pink")}, (15, 90)),
    _type("electronics", f"{_E} › camera & photo › tripods & monopods", "camera tripod",
          "aluminum camera tripod", "lightweight, height adjustable, easy to carry, "
          "carrying bag, durable", {"size": ("50 inch", "60 inch", "67 inch", "72 inch"),
          "color": ("black", "silver")}, (18, 120)),
)  # fmt: skip

BRANDS: tuple[str, ...] = (
    "Aurelle", "Brightway", "Cobalt & Pine", "Dovecrest", "Everleaf", "Fernhill", "Goldmark",
    "Harbor Lane", "Ivywood", "Juniper Co", "Kestrel", "Lumora", "Maplebrook", "Northvale",
    "Oakridge", "Pebble Bay", "Quillon", "Riverstone", "Silverline", "Tidewater", "Umbra",
    "Verdant", "Willowmere", "Xylo", "Yarrow", "Zephyrine", "Amberlyn", "Bluecrest",
    "Cedar Point", "Driftwood", "Emberton", "Foxglen",
)  # fmt: skip

#: Words that make titles of the same type differ (not attributes, so they never decide a
#: reward), e.g. "Aurelle Premium Clip-in Hair Extension ...".
STYLE_WORDS: tuple[str, ...] = (
    "premium", "classic", "essential", "everyday", "deluxe", "original", "signature",
    "advanced", "ultra", "pro", "plus", "value", "studio", "select", "modern", "heritage",
)  # fmt: skip
