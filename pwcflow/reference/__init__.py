"""tfoptflow's compact parity reference, shipped inside the package (see ``RECIPE.md`` here).

Weights come from a numpy recipe (``recipe.py``); ``parity.py`` runs pwcflow on the stored 120x200 pair and
compares with tfoptflow's own outputs for sm-6-2 and lg-6-2.
"""

import os

REF_DIR = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ("sm", "lg")
