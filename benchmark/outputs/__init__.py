"""What a run writes: the results schema and its gates, ablation arm names, stored feature sets, and the
report (tables, figures, HTML, comparisons, bias analysis)."""
