"""The iGSM world: four category hierarchies, each a chain of four categories.

A problem picks one hierarchy, a contiguous window of its categories (the layers)
and, for every layer, one sub-pool of item names. Sub-pools keep the items of one
layer thematically coherent ("Seaside towns", "Research ships") while giving the
generator enough variety that memorising names does not help.

Rules the generator relies on (checked by ``check_bank``):
- item names contain no ".", ";" or "'" (solutions are split on ". " and "; ", and
  "A's B" must split unambiguously);
- item names are unique inside a hierarchy and differ from every category name,
  so that "each X's Y" phrases are unambiguous;
- every sub-pool has at least four names (the widest layer has four items).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    name: str                                   # singular, used in questions: "How many Toy ..."
    pools: tuple[tuple[str, ...], ...]          # sub-pools of item names


@dataclass(frozen=True)
class Hierarchy:
    name: str
    categories: tuple[Category, ...]            # top (container) to bottom (contents)


def _cat(name: str, *pools: str) -> Category:
    return Category(name, tuple(tuple(n.strip() for n in pool.split(",")) for pool in pools))


BANK: tuple[Hierarchy, ...] = (
    Hierarchy("towns", (
        _cat("Town",
             "Seabrook, Port Ellis, Gullwick, Saltmere, Cove Hollow, Tidewater",
             "Ashford, Millbrook, Oakridge, Fernley, Willowby, Stonecross",
             "Highcliff, Pinecrest, Eagle Rock, Frostvale, Summit Ridge, Cold Spring",
             "Dusthaven, Red Mesa, Sandstone, Cactus Flats, Sunbury, Dry Creek",
             "Lakeview, Mirror Bay, Reedford, Heron Point, Still Water, Lilypond"),
        _cat("Park",
             "Elm Park, Oak Park, Birch Park, Maple Park, Cedar Park, Alder Park",
             "Riverside Green, Canal Green, Meadow Green, Village Green, Market Green, Abbey Green",
             "Sunrise Gardens, Rose Gardens, Botanic Gardens, Winter Gardens, Hill Gardens, Queen Gardens",
             "Fox Common, Badger Common, Otter Common, Hare Common, Wren Common, Stag Common",
             "Lantern Square, Fountain Square, Clock Square, Bell Square, Chestnut Square, Mill Square"),
        _cat("Playground",
             "Sand Pit, Rope Maze, Slide Tower, Swing Yard, Climbing Net, Splash Pad",
             "Pirate Deck, Castle Keep, Jungle Gym, Treehouse Fort, Rocket Frame, Dragon Den",
             "Balance Trail, Log Circle, Stepping Path, Mud Kitchen, Willow Tunnel, Bark Maze",
             "Toddler Corner, Music Wall, Sensory Garden, Chalk Court, Puzzle Fence, Spinner Ring",
             "Skate Bowl, Bike Loop, Pump Track, Half Pipe, Grind Rail, Kick Ramp"),
        _cat("Toy",
             "Red Bucket, Blue Spade, Sand Sieve, Water Can, Shell Mould, Tin Rake",
             "Rubber Ball, Jump Rope, Hula Hoop, Frisbee, Kite, Skipping Stone",
             "Toy Truck, Wooden Train, Spinning Top, Yo Yo, Marble Bag, Pogo Stick",
             "Teddy Bear, Rag Doll, Puppet, Plush Rabbit, Knit Owl, Felt Fox",
             "Chalk Stick, Bubble Wand, Whistle, Toy Drum, Kazoo, Paper Kite"),
    )),
    Hierarchy("harbors", (
        _cat("Harbor",
             "North Harbor, South Harbor, Old Harbor, New Harbor, Deep Harbor, Calm Harbor",
             "Gale Port, Storm Port, Coral Port, Amber Port, Iron Port, Silver Port",
             "Fisher Quay, Merchant Quay, Customs Quay, Ferry Quay, Timber Quay, Granite Quay",
             "Lighthouse Bay, Whale Bay, Seal Bay, Puffin Bay, Kelp Bay, Driftwood Bay",
             "East Marina, West Marina, Sunset Marina, Crescent Marina, Pelican Marina, Beacon Marina"),
        _cat("Ship",
             "Sea Sparrow, Wave Dancer, Blue Heron, Morning Star, Salt Runner, Tide Rider",
             "Iron Duke, Steel Maiden, Copper Queen, Bronze Knight, Silver Arrow, Golden Hind",
             "Polar Explorer, Deep Surveyor, Ocean Scholar, Reef Mapper, Ice Pioneer, Current Seeker",
             "Harbor Tug, River Barge, Cargo Mule, Bulk Hauler, Tanker Belle, Container Giant",
             "Lazy Gull, Happy Otter, Dreamy Dolphin, Jolly Crab, Sleepy Seal, Merry Cod"),
        _cat("Cabin",
             "Captain Suite, First Mate Room, Navigator Berth, Bosun Bunk, Cook Quarters, Surgeon Room",
             "Forward Berth, Aft Berth, Port Berth, Starboard Berth, Midship Berth, Upper Berth",
             "Chart Room, Radio Room, Map Room, Signal Room, Logbook Room, Compass Room",
             "Galley, Mess Hall, Pantry Cabin, Scullery, Larder Cabin, Brew Cabin",
             "Guest Cabin, Family Cabin, Twin Cabin, Deluxe Cabin, Budget Cabin, Corner Cabin"),
        _cat("Furniture",
             "Oak Bunk, Pine Bunk, Folding Cot, Hammock, Sea Chest, Foot Locker",
             "Chart Table, Writing Desk, Map Cabinet, Swivel Stool, Lamp Stand, Bookshelf",
             "Galley Stove, Spice Rack, Plate Rack, Water Barrel, Bread Bin, Cutlery Drawer",
             "Armchair, Settee, Card Table, Footstool, Side Table, Rocking Chair",
             "Wash Basin, Mirror Frame, Towel Rail, Coat Hook, Boot Rack, Wardrobe"),
    )),
    Hierarchy("universities", (
        _cat("University",
             "Northgate University, Riverbend University, Kingsfield University, Westmoor University, "
             "Eastbury University, Southvale University",
             "Lakeshore Institute, Hilltop Institute, Harborview Institute, Forestgate Institute, "
             "Stonebridge Institute, Meadowbank Institute",
             "Aurora College, Zenith College, Horizon College, Meridian College, Solstice College, Equinox College",
             "Polytechnic of Brightwater, Polytechnic of Ironvale, Polytechnic of Greywell, "
             "Polytechnic of Redcliff, Polytechnic of Blackmoor, Polytechnic of Whitehaven",
             "Academy of Arts, Academy of Sciences, Academy of Letters, Academy of Music, "
             "Academy of Design, Academy of Law"),
        _cat("Department",
             "Physics Department, Chemistry Department, Biology Department, Geology Department, "
             "Astronomy Department, Ecology Department",
             "Mathematics Faculty, Statistics Faculty, Logic Faculty, Computing Faculty, "
             "Cryptography Faculty, Optimisation Faculty",
             "History School, Philosophy School, Linguistics School, Archaeology School, "
             "Music School, Theatre School",
             "Civil Engineering Division, Marine Engineering Division, Robotics Division, "
             "Aerospace Division, Materials Division, Energy Division",
             "Medicine Unit, Pharmacy Unit, Nursing Unit, Dentistry Unit, Optometry Unit, Nutrition Unit"),
        _cat("Laboratory",
             "Optics Lab, Laser Lab, Cryogenics Lab, Vacuum Lab, Plasma Lab, Acoustics Lab",
             "Wet Lab, Dry Lab, Clean Room, Cold Room, Fume Lab, Culture Lab",
             "Soil Lab, Water Lab, Air Lab, Seed Lab, Fossil Lab, Mineral Lab",
             "Robot Workshop, Drone Workshop, Circuit Workshop, Motor Workshop, Sensor Workshop, Printer Workshop",
             "Teaching Lab, Research Lab, Imaging Lab, Field Lab, Data Lab, Simulation Lab"),
        _cat("Instrument",
             "Microscope, Telescope, Spectrometer, Oscilloscope, Voltmeter, Barometer",
             "Centrifuge, Incubator, Pipette Set, Bunsen Burner, Test Tube Rack, Petri Stack",
             "Caliper, Micrometer, Protractor, Spirit Level, Tape Measure, Set Square",
             "Soldering Iron, Signal Generator, Logic Probe, Power Supply, Multimeter, Heat Gun",
             "Thermometer, Hygrometer, Anemometer, Seismograph, Compass Needle, Rain Gauge"),
    )),
    Hierarchy("farms", (
        _cat("Farm",
             "Green Acres, Willow Farm, Hillside Farm, Brook Farm, Meadow Farm, Orchard End",
             "Sunny Ranch, Dusty Ranch, Bluebell Ranch, Thistle Ranch, Clover Ranch, Heather Ranch",
             "Old Mill Estate, Manor Estate, Priory Estate, Grange Estate, Abbey Estate, Castle Estate",
             "Kestrel Holding, Lark Holding, Finch Holding, Robin Holding, Thrush Holding, Swallow Holding",
             "Upper Croft, Lower Croft, Middle Croft, North Croft, South Croft, Stone Croft"),
        _cat("Orchard",
             "Apple Walk, Pear Walk, Plum Walk, Cherry Walk, Quince Walk, Medlar Walk",
             "Sun Orchard, Moon Orchard, Star Orchard, Cloud Orchard, Rain Orchard, Wind Orchard",
             "Top Grove, Bottom Grove, Long Grove, Round Grove, Hidden Grove, Walled Grove",
             "Bee Garden, Butterfly Garden, Bird Garden, Hedgehog Garden, Frog Garden, Moth Garden",
             "First Terrace, Second Terrace, Third Terrace, Fourth Terrace, Fifth Terrace, Sixth Terrace"),
        _cat("Tree",
             "Bramley Tree, Cox Tree, Gala Tree, Russet Tree, Pippin Tree, Jonagold Tree",
             "Conference Tree, Comice Tree, Williams Tree, Concorde Tree, Bosc Tree, Anjou Tree",
             "Victoria Tree, Damson Tree, Greengage Tree, Mirabelle Tree, Bullace Tree, Sloe Tree",
             "Morello Tree, Stella Tree, Lapins Tree, Sunburst Tree, Kordia Tree, Regina Tree",
             "Walnut Tree, Hazel Tree, Almond Tree, Chestnut Tree, Fig Tree, Mulberry Tree"),
        _cat("Fruit",
             "Red Apple, Green Apple, Crab Apple, Toffee Apple, Cider Apple, Baking Apple",
             "Ripe Pear, Hard Pear, Perry Pear, Juicy Pear, Golden Pear, Speckled Pear",
             "Purple Plum, Yellow Plum, Sour Cherry, Sweet Cherry, Black Cherry, Wild Cherry",
             "Brown Nut, Green Nut, Cob Nut, Fresh Fig, Dried Fig, Dark Mulberry",
             "Windfall, Picked Fruit, Stored Fruit, Bruised Fruit, Prize Fruit, Seedling Fruit"),
    )),
)


def check_bank(bank: tuple[Hierarchy, ...] = BANK) -> list[str]:
    """Every violation of the bank's rules (empty list = fine)."""
    problems: list[str] = []
    for h in bank:
        seen: set[str] = set()
        cats = {c.name for c in h.categories}
        for c in h.categories:
            for k, pool in enumerate(c.pools):
                if len(pool) < 4:
                    problems.append(f"{h.name}/{c.name} pool {k}: fewer than 4 names")
                for name in pool:
                    if "." in name or "'" in name or ";" in name or not name:
                        problems.append(f"{h.name}/{c.name}: bad name {name!r}")
                    if name in seen or name in cats:
                        problems.append(f"{h.name}: duplicate name {name!r}")
                    seen.add(name)
    return problems
