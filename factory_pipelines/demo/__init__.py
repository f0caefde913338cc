"""The demo source: writes a week of landing files (tickets, customers, orders, KB articles) and their labels."""
