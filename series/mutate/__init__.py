"""`series mutate`: how well do the selected test suites guard the C functions
a revision touches?

    cfuncs.py     C functions of a file (a masked scan: comments and strings
                  blanked), and the functions a revision's hunks touch
    operators.py  the mutation operators, each mutant a unified diff
    judge.py      a mutant's boot, judged against the unmutated baseline
                  (shared with bench/mutants)
    engine.py     apply -> build -> per mutant: mutate, compile, compare the
                  object, build, boot each suite, restore; mutants.json
"""
