"""General-domain (non-biomedical) documents for the replay mixture."""

from __future__ import annotations

from typing import Callable

from biomed_jax.synthetic.phrasing import Text


_DISHES = ("barley stew", "lentil soup", "apple cake", "onion tart", "fish pie", "bean salad", "plum jam",
           "rye bread", "potato pancakes", "vegetable curry")
_TOPICS = ("town", "recipe", "club", "river", "festival", "howto", "bird", "museum")
_REPLAY_EXTRAS = (
    "The surrounding countryside is a patchwork of small fields, hedges and beech woods.",
    "Winters in the area are mild and wet, and summers are usually warm and dry.",
    "A weekly market is held in the square on {day}s, selling cheese, honey and vegetables.",
    "Visitors often combine a trip with a walk along the old towpath to {place}.",
    "The local newspaper, founded in {year}, is still printed every {day}.",
    "Many families in the district have lived there for several generations.",
    "The parish church has a square tower and a clock that was restored in {year}.",
    "Cycling routes connect the area with {place} and the villages beyond it.",
    "A small bakery on the high street is known for its seeded loaves.",
    "The primary school takes part in an annual tree-planting day.",
    "Public buses run less often on Sundays, so visitors are advised to check the timetable.",
    "An amateur choir rehearses in the village hall and gives two concerts a year.",
    "The library lends books, maps and board games, and offers free internet access.",
    "Local volunteers keep the footpaths clear and repair stiles after storms.",
)


def replay_doc(t: Text, place: Callable[[], str]) -> str:
    """A paragraph of everyday or encyclopedic prose with no biomedical content."""
    topic = t.pick(_TOPICS)
    town, other = place(), place()
    year = t.int(1650, 1990)
    if topic == "town":
        s = [f"{town} is a small market town on the {other} river, about {t.int(8, 90)} kilometres from the coast.",
             f"It was first recorded in {year} as a ferry crossing and grew around its weekly cattle market.",
             t.pick([f"The old stone bridge, rebuilt in {year + t.int(20, 150)}, still carries the main road.",
                     f"Its population was {t.int(2, 40) * 1000:,} at the last census."]),
             t.pick(["Tourism, farming and a small furniture industry are the main sources of work.",
                     "The town hall houses a library and a room for concerts."]),
             f"Trains to {place()} run every {t.pick(['hour', 'half hour', 'two hours'])}."]
    elif topic == "recipe":
        dish = t.pick(_DISHES)
        s = [f"This {dish} is a family recipe from {town}.",
             f"Start by warming {t.int(1, 4)} tablespoons of butter in a heavy pan over a low heat.",
             t.pick(["Add the chopped onions and cook them slowly until soft and golden.",
                     "Stir in the flour and cook for two minutes without letting it brown."]),
             f"Add the remaining ingredients, cover, and leave to cook for {t.int(20, 90)} minutes.",
             t.pick(["Serve warm with fresh bread.", "It keeps well for two days in a cool place.",
                     "Season to taste just before serving."])]
    elif topic == "club":
        s = [f"{town} Rovers is an amateur football club founded in {year}.",
             f"The team plays its home matches at {other} Park, which holds about {t.int(3, 40) * 100} spectators.",
             t.pick([f"The club won the regional cup in {year + t.int(5, 60)}.",
                     "Its colours are green and white stripes."]),
             "Training sessions for children are held on Saturday mornings.",
             t.pick(["Volunteers run the clubhouse and the annual summer fair.",
                     "The club is known for its loyal supporters."])]
    elif topic == "river":
        s = [f"The {town} is a river about {t.int(20, 400)} kilometres long.",
             f"It rises in the hills above {other} and flows into a wide estuary.",
             t.pick(["Its valley is known for orchards and old water mills.",
                     "Barges carried timber and grain along it until the railway arrived."]),
             f"Several footpaths follow its banks, and a long-distance trail was opened in {t.int(1960, 2015)}.",
             "Otters and kingfishers can often be seen near the weirs."]
    elif topic == "festival":
        s = [f"Every autumn, {town} holds a lantern festival that dates back to {year}.",
             t.pick(["Children carry paper lanterns through the streets at dusk.",
                     "Musicians from neighbouring villages play in the square."]),
             f"The celebration ends with a shared meal of {t.pick(_DISHES)}.",
             f"In recent years the festival has attracted about {t.int(2, 30) * 1000:,} visitors.",
             "Local schools prepare decorations for weeks in advance."]
    elif topic == "howto":
        task = t.pick(["repot a house plant", "sharpen a kitchen knife", "fix a dripping tap",
                       "clean a cast-iron pan", "store winter clothes"])
        s = [f"Learning to {task} takes only a few minutes.",
             "First, gather what you need and clear a space to work.",
             t.pick(["Work slowly and check your progress often.",
                     "Do not rush the first step, as it decides how well the rest goes."]),
             t.pick(["A little patience saves a great deal of money.",
                     "If in doubt, ask at a local hardware shop."]),
             f"Most people find that the job is done within {t.int(10, 60)} minutes."]
    elif topic == "bird":
        s = [f"The grey-crested {other.lower()} is a small songbird of open woodland.",
             f"It nests in hedges and lays {t.int(3, 6)} pale blue eggs in spring.",
             t.pick(["Its song is a rapid series of clear whistles.",
                     "In winter it gathers in flocks with finches and tits."]),
             f"Birdwatchers near {town} report it most often in {t.pick(['April', 'May', 'September'])}.",
             "Its numbers have been stable for several decades."]
    else:
        s = [f"The {town} Museum of Local History opened in {year}.",
             f"Its collection includes tools, costumes and photographs from the {other} valley.",
             t.pick(["A reconstructed schoolroom is popular with visiting families.",
                     "A gallery on the top floor shows paintings by local artists."]),
             "Admission is free on the first Sunday of each month.",
             "Guided tours are offered in summer."]
    extras = [t.fill(_REPLAY_EXTRAS[i], place=place(), year=t.int(1850, 2010),
                     day=t.pick(["Monday", "Wednesday", "Friday", "Saturday"]))
              for i in t.rng.choice(len(_REPLAY_EXTRAS), size=t.int(3, 6), replace=False)]
    return " ".join(s + extras)
