"""What the application tells the trigger about a write: ``audit_context`` values and the
transaction-local ``audit.*`` settings, checked and encoded as their column type reads them."""
