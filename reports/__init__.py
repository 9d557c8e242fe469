"""Reports: statistics, disclosure control, PDFs and exports."""
