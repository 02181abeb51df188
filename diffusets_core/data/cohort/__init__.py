"""data/cohort"""
