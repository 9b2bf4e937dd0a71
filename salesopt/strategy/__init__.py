"""Strategy per segment: price and promotion response, channel mix, a rule-based playbook and the
KPIs that check it (`salesopt.strategy.stage`)."""
