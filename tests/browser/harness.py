"""Helpers for driving the Streamlit dashboard with Selenium (imported by the browser tests)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
WEBRTC_IFRAME = 'iframe[title="streamlit_webrtc.component.webrtc_streamer"]'


def page_text(driver: WebDriver) -> str:
    """All visible text of the Streamlit page (component iframes excluded)."""
    driver.switch_to.default_content()
    return driver.find_element(By.TAG_NAME, "body").text


def wait_for_text(driver: WebDriver, predicate: Callable[[str], object], timeout: float, what: str) -> str:
    """Poll the page text until ``predicate(text)`` is truthy; fail with the last text seen."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = page_text(driver)
        if predicate(text):
            return text
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; page text:\n{text}")


def wait_for(driver: WebDriver, css: str, timeout: float = 60) -> WebElement:
    return WebDriverWait(driver, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def click_button(driver: WebDriver, label: str, timeout: float = 60) -> None:
    """Click the Streamlit button whose visible text is ``label``."""
    xpath = f"//button[normalize-space(.)={label!r}]"
    WebDriverWait(driver, timeout).until(EC.element_to_be_clickable((By.XPATH, xpath))).click()


def webrtc_button(driver: WebDriver, label: str, timeout: float = 60) -> None:
    """Click START / STOP inside the streamlit-webrtc component iframe, then return to the page."""
    driver.switch_to.default_content()
    iframe = wait_for(driver, WEBRTC_IFRAME, timeout)
    driver.switch_to.frame(iframe)
    try:
        xpath = f"//button[translate(normalize-space(.), 'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')={label.upper()!r}]"
        WebDriverWait(driver, timeout).until(EC.element_to_be_clickable((By.XPATH, xpath))).click()
    finally:
        driver.switch_to.default_content()


def sidebar_link(driver: WebDriver, title: str, timeout: float = 30) -> None:
    """Navigate inside the app (same session) with the sidebar link ``title``."""
    xpath = f"//a[@data-testid='stSidebarNavLink'][contains(normalize-space(.), {title!r})]"
    WebDriverWait(driver, timeout).until(EC.element_to_be_clickable((By.XPATH, xpath))).click()


def choose_option(driver: WebDriver, label: str, option: str, timeout: float = 30) -> None:
    """Pick ``option`` in the st.selectbox labelled ``label``."""
    box = WebDriverWait(driver, timeout).until(EC.element_to_be_clickable((
        By.XPATH, f"//div[@data-testid='stSelectbox'][.//label[normalize-space(.)={label!r}]]//div[@role='combobox' or @data-baseweb='select']",
    )))
    box.click()
    WebDriverWait(driver, timeout).until(EC.element_to_be_clickable((
        By.XPATH, f"//li[@role='option'][normalize-space(.)={option!r}]",
    ))).click()


def selectbox_options(driver: WebDriver, label: str, timeout: float = 30) -> list[str]:
    """The options of the st.selectbox labelled ``label`` (opens and closes its list)."""
    box = WebDriverWait(driver, timeout).until(EC.element_to_be_clickable((
        By.XPATH, f"//div[@data-testid='stSelectbox'][.//label[normalize-space(.)={label!r}]]//div[@role='combobox' or @data-baseweb='select']",
    )))
    box.click()
    options = WebDriverWait(driver, timeout).until(
        EC.presence_of_all_elements_located((By.XPATH, "//li[@role='option']")))
    names = [o.text.strip() for o in options]
    box.click()
    return names


def set_input(driver: WebDriver, label: str, value: str, timeout: float = 30) -> None:
    """Type ``value`` into the text / number input labelled ``label`` (aria-label)."""
    field = WebDriverWait(driver, timeout).until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, f"input[aria-label={label!r}]")))
    field.click()
    field.send_keys("\ue009a")  # Ctrl+A
    field.send_keys("\ue017")  # Delete
    field.send_keys(value)


def number(pattern: str, text: str) -> float | None:
    """The first group of ``pattern`` in ``text`` as a float, or None."""
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.switch_to.default_content()
    driver.save_screenshot(str(path))
    return path
