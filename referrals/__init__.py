"""Referrals: the national referral workflow between agencies."""
