"""Cases (issue 7): alerts grouped per entity and scenario, their lifecycle, assignment, notes and evidence."""
