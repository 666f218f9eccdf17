"""One LemList export row as the CSV gives it (every value text, the file's own camelCase names),
with any column changed: the raw input the validation tests build their tables from."""


def lemlist_row(**over) -> dict:
    base = {
        "_id": "a1", "email": "x@y.com", "emailStatus": "deliverable", "firstName": "A", "lastName": "B",
        "phone": "1", "picture": "p", "linkedinUrl": "u", "companyName": "c", "jobTitle": " CEO ",
        "industry": "retail", "companySize": "12", "location": "paris, france", "campaignName": "q1",
        "createdAt": "2026-01-05T08:00:00.000Z", "status": "Done", "lastState": "linkedinReplied",
        "lastStateAt": "", "stepsCompleted": "2",
    }
    return base | over
