//! A read-through cache of survey definitions, so hot request paths skip a storage read.

use crate::ports::{StoreError, SurveyStore};
use crate::survey::Survey;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Caches `get_survey` answers (found or not) for a fixed time; writes go straight through.
pub struct CachedSurveys {
    inner: Arc<dyn SurveyStore>,
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Option<Survey>)>>,
}

/// Most surveys kept in the cache before it is cleared.
const MAX_ENTRIES: usize = 10_000;

impl CachedSurveys {
    /// A cache in front of `inner` keeping answers for `ttl`.
    pub fn new(inner: Arc<dyn SurveyStore>, ttl: Duration) -> CachedSurveys {
        CachedSurveys {
            inner,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl SurveyStore for CachedSurveys {
    async fn get_survey(&self, id: &str) -> Result<Option<Survey>, StoreError> {
        {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, survey)) = entries.get(id) {
                if at.elapsed() < self.ttl {
                    return Ok(survey.clone());
                }
            }
        }
        let survey = self.inner.get_survey(id).await?;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(id.to_string(), (Instant::now(), survey.clone()));
        Ok(survey)
    }

    async fn create_survey(&self, survey: &Survey) -> Result<(), StoreError> {
        self.inner.create_survey(survey).await?;
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&survey.id);
        Ok(())
    }

    async fn list_surveys(&self) -> Result<Vec<Survey>, StoreError> {
        self.inner.list_surveys().await
    }
}
