# Times everywhere Django formats them itself (the admin, above all) say which zone they are in:
# job pages show the tenant's zone, the admin the server's.
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
