"""The admin console requires staff to have completed a second factor (django-otp).

django-otp's OTPAdminSite treats a member of staff who has not verified a factor in this session
as not staff at all; its login form asks for the factor after the password. We keep the site's
usual name, ``admin``, so that every ``admin:`` URL keeps working.
"""

from __future__ import annotations

from django_otp.admin import OTPAdminSite


class SecondFactorAdminSite(OTPAdminSite):
    site_header = "Identity Management Compliance"
    site_title = "Identity admin"
    index_title = "Privacy, security and support"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
