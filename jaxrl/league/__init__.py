"""Self-play and ratings on two-sided zero-sum games.

selfplay  the on-device league the learner trains against (snapshot pool, opponent sampling)
arena     players (trained, scripted, external) and matches between them
ratings   round robins, Elo ratings and the league report of a run
"""
