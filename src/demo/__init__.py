"""The demo data (generated customer-churn events): delete this package once your own data is versioned."""
