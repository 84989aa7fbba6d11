"""What goes to the list: changelogs, cover letters, lore-ready mails, validation, sending."""
