"""The sign-off: the model of one run (:mod:`.model`), built from the journal and JUnit
(:mod:`.assemble`), rendered as a page (:mod:`.html`, from ``templates/signoff.html.j2``) and as
Markdown (:mod:`.markdown`), and written into the results directory (:mod:`.write`)."""
