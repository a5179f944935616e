"""The schema of ``workshop.yaml``."""
from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from chalicelib.domain.languages import DEFAULT, SHIPPED
from chalicelib.domain.registration import WORKSHOP_ID_PATTERN as ID_PATTERN

MAX_SEATS = 1000
TITLE_MAX, DESCRIPTION_MAX = 80, 400
ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$"  # a title is a mail subject and a calendar event's summary


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StudentRange(Strict):
    prefix: str = Field("student", pattern=r"^[a-z][a-z0-9-]{0,15}$")
    first: int = Field(alias="from", ge=0)
    last: int = Field(alias="to", ge=0)

    @model_validator(mode="after")
    def _ordered(self):
        if self.last < self.first:
            raise ValueError("'to' must be at least 'from'")
        if self.last - self.first + 1 > MAX_SEATS:
            raise ValueError(f"a workshop has at most {MAX_SEATS} students")
        return self

    def ids(self) -> list[str]:
        return [f"{self.prefix}{n}" for n in range(self.first, self.last + 1)]


class Presenter(Strict):
    name: str = Field(min_length=1, max_length=80)
    title: str | None = Field(None, max_length=120)


class Appliance(Strict):
    command: list[str] = Field(min_length=1)
    port_base: int = Field(ge=1024, le=64000)
    health_path: str = Field("/health", pattern=r"^/[A-Za-z0-9._~/-]*$")


class Extension(Strict):
    minutes: int = Field(30, ge=5, le=240, description="added by one extension")
    max: int = Field(2, ge=0, le=10, description="extensions a participant may take")


class SurveyQuestion(Strict):
    """One of a workshop's own survey questions: free text, or one of ``choices``."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    text: str = Field(min_length=1, max_length=200)
    choices: list[str] | None = Field(None, min_length=2, max_length=6)

    @model_validator(mode="after")
    def _plain_choices(self):
        for choice in self.choices or []:
            if not 1 <= len(choice.strip()) <= 60 or choice != choice.strip():
                raise ValueError("each choice is 1 to 60 characters, without surrounding spaces")
        if self.choices and len(set(self.choices)) != len(self.choices):
            raise ValueError("choices must differ")
        return self


class WorkshopText(Strict):
    """The title and description in another language (``translations: {fr: {title, description}}``);
    what is left out shows in the workshop's own."""

    title: str | None = Field(None, min_length=1, max_length=TITLE_MAX, pattern=ONE_LINE)
    description: str | None = Field(None, min_length=1, max_length=DESCRIPTION_MAX)

    @model_validator(mode="after")
    def _says_something(self):
        if self.title is None and self.description is None:
            raise ValueError("give a title, a description or both")
        return self


class WorkshopSpec(Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1, max_length=TITLE_MAX, pattern=ONE_LINE)
    description: str = Field(min_length=1, max_length=DESCRIPTION_MAX)
    category: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")
    duration: int = Field(ge=15, le=480, description="minutes")
    students: StudentRange | None = None
    seats: int | None = Field(None, ge=1, le=MAX_SEATS)
    # the backend that runs it; unset: the only location the platform knows (catalog check says so)
    location: str | None = Field(None, min_length=1, max_length=40)
    presenter: Presenter
    replay: HttpUrl | None = None
    badge: str | None = Field(None, max_length=200)
    active: bool = True
    beta: bool = False
    priority: int = Field(100, ge=0, le=10000)
    appliance: Appliance | None = None
    extension: Extension = Extension()
    warm_pool: int = Field(0, ge=0, le=MAX_SEATS, description="free students kept with a running server")
    confirm: bool = Field(True, description="a new registration is held until its email address confirms it")
    survey: list[SurveyQuestion] = Field([], max_length=5, description="questions of its own, after the three")
    timezone: str | None = Field(None, max_length=64, description="IANA zone of its calendar invitations' times")
    translations: dict[str, WorkshopText] = Field({}, description="its title and description in other languages")

    @field_validator("translations")
    @classmethod
    def _shipped_languages(cls, given: dict[str, WorkshopText]) -> dict[str, WorkshopText]:
        others = [code for code in SHIPPED if code != DEFAULT]
        for language in given:
            if language not in others:
                raise ValueError(f"{language!r} is not a language the platform ships besides its own ({DEFAULT}): "
                                 f"one of {', '.join(others)}")
        return given

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        if name is not None and name not in available_timezones():
            raise ValueError("an IANA time zone name, such as Europe/Paris or America/New_York")
        return name

    @model_validator(mode="after")
    def _survey_ids_differ(self):
        ids = [q.id for q in self.survey]
        if len(set(ids)) != len(ids):
            raise ValueError("survey question ids must differ")
        return self

    @model_validator(mode="after")
    def _one_seat_source(self):
        if (self.students is None) == (self.seats is None):
            raise ValueError("give either 'students' (a range) or 'seats' (a count), not both or neither")
        return self

    @model_validator(mode="after")
    def _pool_fits(self):
        if self.warm_pool > len(self.student_range.ids()):
            raise ValueError("warm_pool cannot exceed the number of seats")
        return self

    def stored_fields(self) -> dict[str, Any]:
        """What a catalog sync writes of this spec on the workshop's item, by attribute name (``None``:
        the item has none). A new ``workshop.yaml`` field that pages or mails read is one line here."""
        return {
            "title": self.title, "description": self.description, "category": self.category,
            "duration_minutes": self.duration, "presenter": self.presenter.model_dump(exclude_none=True),
            "replay_url": str(self.replay) if self.replay else None, "badge": self.badge or None,
            "active": self.active, "beta": self.beta, "priority": self.priority,
            "appliance": self.appliance.model_dump() if self.appliance else None,
            "extension_minutes": self.extension.minutes, "extension_max": self.extension.max,
            "warm_pool": self.warm_pool, "confirm": self.confirm,
            "survey": [q.model_dump(exclude_none=True) for q in self.survey] or None,
            "timezone": self.timezone,
            "translations": {language: text.model_dump(exclude_none=True)
                             for language, text in self.translations.items()} or None,
        }

    @property
    def student_range(self) -> StudentRange:
        """``seats: N`` means students ``<slug>-1 .. <slug>-N``, e.g. ``py101-1``."""
        if self.students is not None:
            return self.students
        slug = self.id.removeprefix("WKSHP-").lower()[:14]
        slug = (slug if slug[0].isalpha() else "w" + slug[:13]) + "-"
        return StudentRange(prefix=slug, first=1, last=self.seats)
