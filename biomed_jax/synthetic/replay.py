"""General-domain (non-biomedical) documents for the replay mixture."""

from __future__ import annotations

import functools
from typing import Callable

from biomed_jax.synthetic.phrasing import Text


_DISHES = ("barley stew", "lentil soup", "apple cake", "onion tart", "fish pie", "bean salad", "plum jam",
           "rye bread", "potato pancakes", "vegetable curry")
_REPLAY_EXTRAS = (
    "The surrounding countryside is a patchwork of small fields, hedges and beech woods.",
    "Winters in the area are mild and wet, and summers are usually warm and dry.",
    "A weekly market is held in the square on {pick:Monday|Wednesday|Friday|Saturday}s, selling cheese, honey "
    "and vegetables.",
    "Visitors often combine a trip with a walk along the old towpath to {place}.",
    "The local newspaper, founded in {int:1850-2010}, is still printed every {pick:Monday|Wednesday|Friday|Saturday}.",
    "Many families in the district have lived there for several generations.",
    "The parish church has a square tower and a clock that was restored in {int:1850-2010}.",
    "Cycling routes connect the area with {place} and the villages beyond it.",
    "A small bakery on the high street is known for its seeded loaves.",
    "The primary school takes part in an annual tree-planting day.",
    "Public buses run less often on Sundays, so visitors are advised to check the timetable.",
    "An amateur choir rehearses in the village hall and gives two concerts a year.",
    "The library lends books, maps and board games, and offers free internet access.",
    "Local volunteers keep the footpaths clear and repair stiles after storms.",
)


# One document per topic: its sentences in order, each a template or a tuple of alternatives. Slots:
# {town} and {other} (two invented place names, the same throughout a document), {place} (a fresh one),
# {year} (the document's founding year) and the later years {rebuilt} and {cup}, {dish} and {task}.
_TOPICS: dict[str, tuple[str | tuple[str, ...], ...]] = {
    "town": (
        "{town} is a small market town on the {other} river, about {int:8-90} kilometres from the coast.",
        "It was first recorded in {year} as a ferry crossing and grew around its weekly cattle market.",
        ("The old stone bridge, rebuilt in {rebuilt}, still carries the main road.",
         "Its population was {int:2-40},000 at the last census."),
        ("Tourism, farming and a small furniture industry are the main sources of work.",
         "The town hall houses a library and a room for concerts."),
        "Trains to {place} run every {pick:hour|half hour|two hours}."),
    "recipe": (
        "This {dish} is a family recipe from {town}.",
        "Start by warming {int:1-4} tablespoons of butter in a heavy pan over a low heat.",
        ("Add the chopped onions and cook them slowly until soft and golden.",
         "Stir in the flour and cook for two minutes without letting it brown."),
        "Add the remaining ingredients, cover, and leave to cook for {int:20-90} minutes.",
        ("Serve warm with fresh bread.", "It keeps well for two days in a cool place.",
         "Season to taste just before serving.")),
    "club": (
        "{town} Rovers is an amateur football club founded in {year}.",
        "The team plays its home matches at {other} Park, which holds about {int:3-40}00 spectators.",
        ("The club won the regional cup in {cup}.", "Its colours are green and white stripes."),
        "Training sessions for children are held on Saturday mornings.",
        ("Volunteers run the clubhouse and the annual summer fair.", "The club is known for its loyal supporters.")),
    "river": (
        "The {town} is a river about {int:20-400} kilometres long.",
        "It rises in the hills above {other} and flows into a wide estuary.",
        ("Its valley is known for orchards and old water mills.",
         "Barges carried timber and grain along it until the railway arrived."),
        "Several footpaths follow its banks, and a long-distance trail was opened in {int:1960-2015}.",
        "Otters and kingfishers can often be seen near the weirs."),
    "festival": (
        "Every autumn, {town} holds a lantern festival that dates back to {year}.",
        ("Children carry paper lanterns through the streets at dusk.",
         "Musicians from neighbouring villages play in the square."),
        "The celebration ends with a shared meal of {dish}.",
        "In recent years the festival has attracted about {int:2-30},000 visitors.",
        "Local schools prepare decorations for weeks in advance."),
    "howto": (
        "Learning to {task} takes only a few minutes.",
        "First, gather what you need and clear a space to work.",
        ("Work slowly and check your progress often.",
         "Do not rush the first step, as it decides how well the rest goes."),
        ("A little patience saves a great deal of money.", "If in doubt, ask at a local hardware shop."),
        "Most people find that the job is done within {int:10-60} minutes."),
    "bird": (
        "The grey-crested {bird} is a small songbird of open woodland.",
        "It nests in hedges and lays {int:3-6} pale blue eggs in spring.",
        ("Its song is a rapid series of clear whistles.", "In winter it gathers in flocks with finches and tits."),
        "Birdwatchers near {town} report it most often in {pick:April|May|September}.",
        "Its numbers have been stable for several decades."),
    "museum": (
        "The {town} Museum of Local History opened in {year}.",
        "Its collection includes tools, costumes and photographs from the {other} valley.",
        ("A reconstructed schoolroom is popular with visiting families.",
         "A gallery on the top floor shows paintings by local artists."),
        "Admission is free on the first Sunday of each month.",
        "Guided tours are offered in summer."),
}
_TASKS = ("repot a house plant", "sharpen a kitchen knife", "fix a dripping tap", "clean a cast-iron pan",
          "store winter clothes")


def replay_doc(t: Text, place: Callable[[], str]) -> str:
    """A paragraph of everyday or encyclopedic prose with no biomedical content."""
    topic = t.pick(tuple(_TOPICS))
    year = functools.cache(lambda: t.int(1650, 1990))
    slots = {"town": functools.cache(place), "other": functools.cache(place), "place": place, "year": year,
             "rebuilt": lambda: year() + t.int(20, 150), "cup": lambda: year() + t.int(5, 60),
             "bird": lambda: place().lower(), "dish": lambda: t.pick(_DISHES), "task": lambda: t.pick(_TASKS)}
    s = [t.say(sentence, **slots) for sentence in _TOPICS[topic]]
    extras = [t.fill(_REPLAY_EXTRAS[i], place=place)
              for i in t.rng.choice(len(_REPLAY_EXTRAS), size=t.int(3, 6), replace=False)]
    return " ".join(s + extras)
